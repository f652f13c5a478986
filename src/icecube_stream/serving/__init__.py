"""The model server's logic, kept out of `bento/service.py` so it is typed and unit-testable.

`request` turns a body into checked arrays, `response` builds the JSON answer, `holder` owns the
served model (load, warm-up, swap on reload) and `app` is the ASGI app BentoML mounts.
"""
