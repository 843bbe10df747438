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
RUN pip install --no-cache-dir .
COPY . .
# collectstatic needs settings that load; these throwaway values never reach a running container.
RUN DEBUG=true python manage.py collectstatic --noinput
RUN useradd --create-home panel && mkdir -p /app/var && chown panel /app/var
USER panel
EXPOSE 8000
CMD ["gunicorn", "panel.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
