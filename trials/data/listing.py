"""Listing a split's image files: symlinks followed, each real folder entered once, each real file counted once.

Users build data sets as symlink farms (`tokensweep data imagenet100` links class folders into an
ImageNet-1k copy; others link single files), so links are followed. A plain `os.walk(followlinks=True)`
has no loop detection: a `loop -> .` link lists a class ~40 times over (until the kernel gives up
resolving the path), `up -> ..` in a few class folders branches without end. Here, per split:

- a folder is entered once, known by (st_dev, st_ino); a folder link that leads to a folder above it
  (a loop), into another class folder (whose images have their own label) or to a folder already
  listed is not followed;
- a file is counted once, known by (st_dev, st_ino): a plain file by its folder's device and the
  inode the directory listing gives (no stat per file: a listing of ImageNet stays a listing), a
  file link by what it leads to (the stat that telling a file from a folder needed anyway). A link to
  a plain file of the split is left out wherever it is, so that the file keeps its own class's label;
- only regular files (after links are followed) are images: a FIFO, socket or device named `x.png`
  is left out, as opening a FIFO waits for a writer forever;
- what was left out is kept (`note()`: one line with counts and an example) for the caller to show:
  silently dropping files would be as bad as silently multiplying them.
"""

import os
import stat
import sys
from pathlib import Path

from trials.errors import ConfigError

SPLITS = ("train", "val")  # an ImageFolder is root/<split>/<class>/<image files>
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_SAID: set[str] = set()  # notes this process has printed (a reused worker meets the same data again)


def say_once(note: str | None) -> None:
    """Print a listing note to stderr once per process."""
    if note and note not in _SAID:
        _SAID.add(note)
        print(f"note: {note}", file=sys.stderr, flush=True)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def image_files(split_dir: str | Path) -> list[tuple[str, int]]:
    """(path relative to split_dir, size) of each image file of the split (SplitLister.image_files)."""
    return SplitLister(split_dir).image_files()


def _is_within(path: str, folder: str) -> bool:
    """path is folder or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _cannot_read(err: OSError) -> ConfigError:
    return ConfigError(f"cannot read {err.filename}: {err.strerror or err}")


class SplitLister:
    """Lists the class folders of one split: `list_classes(class_dirs, keep)` or `image_files()`; `note()`
    says what was left out."""

    def __init__(self, split_dir: str | Path):
        self.split_dir = Path(split_dir)
        self.folders: set[tuple[int, int]] = set()  # (st_dev, st_ino) of every folder entered or to enter
        self.class_reals: set[str] = set()  # real paths of the split's class folders
        self.class_names: list[str] = []  # the split's class folders, by name
        self._find_class_folders()
        self.current_class = ""  # real path of the class folder being walked
        self.skipped_folders: list[tuple[str, str]] = []  # (path, the real folder it leads to)
        self.duplicates: list[str] = []
        self.duplicates_by_class: list[list[str]] = []  # of the last list_classes, one list per class folder
        self.plain_keys: set[tuple[int, int]] = set()  # (st_dev, st_ino) of the plain files listed
        self.not_regular: list[str] = []  # paths named like images that are not regular files

    def _find_class_folders(self) -> None:
        """Every class folder of the split, so that a link from one class into another is not followed."""
        try:
            entries = list(os.scandir(self.split_dir))
        except OSError:
            return  # find_classes reports a missing or unreadable split
        for entry in entries:
            try:
                if entry.is_dir() and not entry.name.startswith("."):
                    st = entry.stat()
                    self.folders.add((st.st_dev, st.st_ino))
                    self.class_reals.add(os.path.realpath(entry.path))
                    self.class_names.append(entry.name)
            except OSError:
                continue
        self.class_names.sort()

    def list_classes(self, class_dirs, keep=lambda name: True) -> list[list[str]]:
        """For each class folder, its files whose name `keep` accepts, each real file once in the split,
        in os.walk's order (a folder's files by name, then each sub-folder's); hidden folders skipped.
        Once per lister: what it has seen stays seen."""
        walked = [self._walk(str(d), keep) for d in class_dirs]  # all plain files first: a link to one is left out
        links: set[tuple] = set()
        listed, self.duplicates_by_class = [], []
        for items, left_out in walked:
            kept = []
            for item in items:
                if type(item) is str:  # a plain file
                    kept.append(item)
                    continue
                path, key = item
                if key in self.plain_keys or key in links:
                    left_out.append(path)
                else:
                    links.add(key)
                    kept.append(path)
            listed.append(kept)
            self.duplicates_by_class.append(left_out)
            self.duplicates.extend(left_out)
        return listed

    def image_files(self) -> list[tuple[str, int]]:
        """(path relative to the split, size) of each image file of every class folder, as the loaders list
        them, in the order of a walk that enters folders by name. A path without a size (a link that leads
        nowhere) is left out: no image is there."""
        prefix = len(str(self.split_dir)) + 1
        listed = self.list_classes([self.split_dir / name for name in self.class_names], is_image_file)
        files = []
        for path in (path for paths in listed for path in paths):
            try:
                files.append((path[prefix:], os.stat(path).st_size))
            except OSError:
                continue
        return sorted(files, key=lambda file: file[0].split(os.sep))

    def _walk(self, class_dir: str, keep) -> tuple[list, list[str]]:
        """([plain file path, or (link path, key of what it leads to)], [paths left out]) under class_dir.

        A plain file's key is (its folder's st_dev, the inode its listing gives): no stat per file (this
        runs once per image of the split, so it is written for speed); a second hard link is left out."""
        try:
            device = os.stat(class_dir).st_dev
        except OSError as err:
            raise _cannot_read(err) from None
        self.current_class = os.path.realpath(class_dir)
        items, left_out, plain = [], [], self.plain_keys
        stack = [(class_dir, self.current_class, device)]
        while stack:
            path, real, device = stack.pop()
            files, folders = self._entries(path, real)
            for entry in files:
                if not keep(entry.name):
                    continue
                if entry.is_symlink():
                    key = _link_key(entry)
                    if key is None:
                        self.not_regular.append(entry.path)
                    else:
                        items.append((entry.path, key))
                    continue
                if not entry.is_file(follow_symlinks=False):  # the listing's file type: no stat
                    self.not_regular.append(entry.path)
                    continue
                key = (device, entry.inode())
                if key in plain:
                    left_out.append(entry.path)
                else:
                    plain.add(key)
                    items.append(entry.path)
            stack.extend(reversed(folders))
        return items, left_out

    def _entries(self, path: str, real: str) -> tuple[list[os.DirEntry], list[tuple[str, str, int]]]:
        """(file entries, [(sub-folder path, its real path, its st_dev)] to enter) of one folder, by name."""
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
        folders = [(e.path, *claimed[e.name]) for e in subdirs if claimed[e.name] is not None]
        return files, folders

    def _folder_to_enter(self, entry: os.DirEntry, parent_real: str) -> tuple[str, int] | None:
        """(real path, st_dev) of a sub-folder to enter; None (and noted) for a loop or a folder seen before."""
        link = entry.is_symlink()
        target = os.path.realpath(entry.path) if link else os.path.join(parent_real, entry.name)
        try:
            st = entry.stat()
        except OSError as err:
            raise _cannot_read(err) from None
        key = (st.st_dev, st.st_ino)
        loops = link and (_is_within(parent_real, target) or self._in_another_class(target))
        if loops or key in self.folders:
            self.skipped_folders.append((entry.path, target))
            return None
        self.folders.add(key)
        return target, st.st_dev

    def _in_another_class(self, real: str) -> bool:
        """`real` (a folder link's target) lies in a class folder other than the one being walked."""
        path = real
        while path not in self.class_reals:
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
        return path != self.current_class

    def not_regular_in(self, class_dir: str | Path) -> list[str]:
        """The paths under class_dir left out for not being regular files."""
        prefix = str(class_dir).rstrip(os.sep) + os.sep
        return [path for path in self.not_regular if path.startswith(prefix)]

    def note(self) -> str | None:
        """One line saying what was left out of the split, or None."""
        parts = []
        if self.skipped_folders:
            path, target = self.skipped_folders[0]
            parts.append(
                f"did not enter {len(self.skipped_folders)} folder(s) that loop back to a folder above them, "
                f"lead into another class or to a folder already listed (e.g. {path} -> {target})"
            )
        if self.duplicates:
            parts.append(
                f"left out {len(self.duplicates)} path(s) to an image listed elsewhere in the split "
                f"(e.g. {self.duplicates[0]})"
            )
        if parts:
            parts = ["; ".join(parts) + ": each image is counted once"]
        if self.not_regular:
            parts.append(f"skipped {len(self.not_regular)} path(s) that are not regular files "
                         f"(e.g. {describe_not_regular(self.not_regular[0])}): only regular files are read as images")  # fmt: skip
        if not parts:
            return None
        return f"{self.split_dir}: " + "; ".join(parts)


def describe_not_regular(path: str) -> str:
    """'path (a FIFO)': what a path that is no regular file is, for messages."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{path} ({kind})"


def _link_key(entry: os.DirEntry) -> tuple | None:
    """(st_dev, st_ino) of what a file link leads to; None if that is no regular file. A link that leads
    nowhere is its own key (listed, to fail or be skipped as an unreadable image)."""
    try:
        st = entry.stat()  # cached: is_dir() followed the link already
    except OSError:
        return ("unresolved", entry.path)
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
