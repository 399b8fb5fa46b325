# The bacalao node image: `docker compose up` builds it (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protocol protocol
COPY requester requester
COPY compute compute
COPY cli cli
RUN pip install --no-cache-dir . && rm -rf /src
ENV BACALAO_DIR=/data
VOLUME /data
ENTRYPOINT ["bacalao"]
