"""The model server's logic, kept out of `bento/service.py` so it is typed and unit-testable.

`request` turns a body into a checked frame, `holder` owns the served model (load, warm-up, swap
on reload) and `app` is the ASGI app BentoML mounts; the answer's type is `wire.model_api`'s.
"""
