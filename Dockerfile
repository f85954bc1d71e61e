# One image for every process of the service (api, dispatcher, migrate, ray-head, ray-worker).
# CPU by default; GPU nodes build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# torch first, from the index that matches the node (never the multi-GB CUDA build by accident)
RUN pip install "torch==2.13.0" --index-url "$TORCH_INDEX"
COPY pyproject.toml README.md ./
COPY tuner ./tuner
COPY workers ./workers
COPY api ./api
COPY cli ./cli
COPY migrations ./migrations
RUN pip install -e .

ENV TUNER_DATABASE_URL=postgresql://tuner:tuner@postgres:5432/tuner \
    TUNER_DATA_ROOT=/data
EXPOSE 8000
CMD ["tuner", "api", "--host", "0.0.0.0", "--port", "8000"]
