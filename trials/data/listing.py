"""Listing a split's image files: symlinks followed, each real folder entered once, each real file counted once.

Users build data sets as symlink farms (`tokensweep data imagenet100` links class folders into an
ImageNet-1k copy; others link single files), so links are followed. A plain `os.walk(followlinks=True)`
has no loop detection: a `loop -> .` link lists a class ~40 times over (until the kernel gives up
resolving the path), `up -> ..` in a few class folders branches without end. Here, per split:

- a folder is entered once, known by (st_dev, st_ino); a folder link that leads to a folder above it
  (a loop), to one already listed, or to another class folder (whose images have their own label) is
  not followed;
- a file is counted once, known by its real path (a plain file in a folder entered once is unique; a
  file link is resolved);
- what was left out is kept (`SplitLister.note()`: one line with counts and an example) for the caller
  to show: silently dropping files would be as bad as silently multiplying them.
"""

import os
import sys
from pathlib import Path

from trials.errors import ConfigError

_SAID: set[str] = set()  # notes this process has printed (a reused worker meets the same data again)


def say_once(note: str | None) -> None:
    """Print a listing note to stderr once per process."""
    if note and note not in _SAID:
        _SAID.add(note)
        print(f"note: {note}", file=sys.stderr, flush=True)


def _folder_key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _is_within(path: str, folder: str) -> bool:
    """path is folder or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _cannot_read(err: OSError):
    return ConfigError(f"cannot read {err.filename}: {err.strerror or err}")


class SplitLister:
    """Lists class folders of one split (`files(class_dir, keep)`), sharing what was seen between them."""

    def __init__(self, split_dir: str | Path):
        self.split_dir = Path(split_dir)
        self.folders: set[tuple[int, int]] = set(self._class_folder_keys())
        self.real_files: set[str] = set()
        self.skipped_folders: list[tuple[str, str]] = []  # (path, the real folder it leads to)
        self.duplicates: list[str] = []

    def _class_folder_keys(self):
        """Every class folder of the split: a link from one class into another is not followed."""
        try:
            entries = list(os.scandir(self.split_dir))
        except OSError:
            return  # find_classes reports a missing or unreadable split
        for entry in entries:
            try:
                if entry.is_dir() and not entry.name.startswith("."):
                    yield _folder_key(entry.stat())
            except OSError:
                continue

    def files(self, class_dir: str | Path, keep=lambda name: True) -> list[str]:
        """Files under class_dir whose name `keep` accepts, sorted as os.walk would give them
        (a folder's files, then each sub-folder's, by name); hidden folders are skipped."""
        class_dir = str(class_dir)
        found = []
        stack = [(class_dir, os.path.realpath(class_dir))]
        while stack:
            path, real = stack.pop()
            files, folders = self._entries(path, real)
            real_prefix = real.rstrip(os.sep) + os.sep  # (string concatenation: os.path.join is most of the cost)
            for entry in files:
                if keep(entry.name):
                    self._add_file(found, entry, real_prefix + entry.name)
            stack.extend(reversed(folders))
        return found

    def _entries(self, path: str, real: str) -> tuple[list[os.DirEntry], list[tuple[str, str]]]:
        """(file entries, [(sub-folder path, its real path)] to enter) of one folder, by name."""
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise _cannot_read(err) from None
        files, subdirs = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:  # a link that cannot be resolved (e.g. a -> b -> a): a file, as os.walk has it
                is_dir = False
            if not is_dir:
                files.append(entry)
            elif not entry.name.startswith("."):
                subdirs.append(entry)
        # plain folders claim their (st_dev, st_ino) before links to them do, so a link is what is skipped
        claimed = {e.name: self._folder_to_enter(e, real) for e in sorted(subdirs, key=lambda e: e.is_symlink())}
        folders = [(e.path, claimed[e.name]) for e in subdirs if claimed[e.name] is not None]
        return files, folders

    def _folder_to_enter(self, entry: os.DirEntry, parent_real: str) -> str | None:
        """The sub-folder's real path if it is new; None (and noted) for a loop or a folder seen before."""
        target = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(parent_real, entry.name)
        try:
            key = _folder_key(entry.stat())
        except OSError as err:
            raise _cannot_read(err) from None
        if _is_within(parent_real, target) or key in self.folders:
            self.skipped_folders.append((entry.path, target))
            return None
        self.folders.add(key)
        return target

    def _add_file(self, found: list[str], entry: os.DirEntry, real: str) -> None:
        """`real`: the file's real path if it is no link (its folder's real path and its name)."""
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
        if real in self.real_files:
            self.duplicates.append(entry.path)
            return
        self.real_files.add(real)
        found.append(entry.path)

    def note(self) -> str | None:
        """One line saying what was left out of the split, or None."""
        parts = []
        if self.skipped_folders:
            path, target = self.skipped_folders[0]
            parts.append(
                f"did not enter {len(self.skipped_folders)} folder(s) that loop back to a folder above them "
                f"or lead to one already listed (e.g. {path} -> {target})"
            )
        if self.duplicates:
            parts.append(
                f"left out {len(self.duplicates)} path(s) to an image already listed (e.g. {self.duplicates[0]})"
            )
        if not parts:
            return None
        return f"{self.split_dir}: " + "; ".join(parts) + ": each image is counted once"
