"""Typed wire schemas: one msgspec Struct per body decodes JSON and MessagePack, validates, and documents.

Each dialect keeps its own module (`sie`, `cohere`, `tei`, `admin`) so its field names stay its
own; `errors` is the envelope every route answers with. `openapi.py` turns them into the
served document, so what the server accepts and what it documents cannot drift apart.
"""
