# One image for every platform process (relay, admin API, and the streams as they are built).
# A regular (non-editable) install: the catalog, schemas and migrations are package data of the
# wheel (soma/catalog/, soma_migrations/), so the source tree is not needed at run time.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY soma ./soma
COPY soma_migrations ./soma_migrations
COPY outbox ./outbox
COPY streams ./streams
COPY bench ./bench
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /src
WORKDIR /app
USER nobody
ENTRYPOINT ["soma"]
