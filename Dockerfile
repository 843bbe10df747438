# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PANEL_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
COPY panel panel
COPY accounts accounts
COPY catalog catalog
COPY orders orders
COPY providers providers
COPY support support
RUN pip install --no-cache-dir .
COPY . .
# collectstatic needs settings that load; these throwaway values never reach a running container.
RUN DEBUG=true python manage.py collectstatic --noinput
RUN useradd --create-home panel && mkdir -p /app/var/media && chown -R panel /app/var
USER panel
EXPOSE 8000
# gunicorn.conf.py: bind, workers, an access log without query strings, the longest request line.
CMD ["gunicorn", "panel.wsgi", "--config", "gunicorn.conf.py"]
