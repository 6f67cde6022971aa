"""The WSGI entry point: `gunicorn wsgi:app` in production, `python wsgi.py` for the development server."""

if __name__ == "__main__":
    from core.devserver import serve

    serve()
else:
    from core.factory import create_app

    app = create_app()
