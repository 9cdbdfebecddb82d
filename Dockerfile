# One image for every platform process (relay, admin API, and the streams as they are built).
# Installed editable: the package reads topics.yaml, schemas/ and migrations/ beside its code.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini topics.yaml ./
COPY soma ./soma
COPY outbox ./outbox
COPY streams ./streams
COPY bench ./bench
COPY schemas ./schemas
COPY migrations ./migrations
RUN pip install --no-cache-dir -c constraints.txt -e .
USER nobody
ENTRYPOINT ["soma"]
