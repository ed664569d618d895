"""The HTTP service: a thin FastAPI layer over the ``reid`` library (see ``app.main.create_app``)."""
