FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY nlp ./nlp
COPY storage ./storage
RUN pip install --no-cache-dir . && useradd --create-home linli
USER linli
# Load the jieba dictionary once at build time so its cache is warm at start-up.
RUN python -c "import nlp; nlp.warm_up()"
EXPOSE 8080
CMD ["sh", "-c", "linli db upgrade && linli serve --host 0.0.0.0 --port 8080"]
