# The MLflow tracking server of docker/compose.yaml: PostgreSQL backend, served artifacts, basic auth.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow==3.17.2" "psycopg2-binary>=2.9,<3"
RUN useradd --create-home --uid 1000 mlflow && mkdir -p /mlflow/artifacts /mlflow/auth && chown -R mlflow /mlflow
COPY docker/mlflow-auth.ini /etc/mlflow/basic_auth.ini
USER mlflow
EXPOSE 5000
