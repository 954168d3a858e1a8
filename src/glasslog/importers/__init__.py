"""Importers: audit logs that other systems wrote, brought into a glasslog log.

``glasslog import --format k8s-audit|cloudtrail|jsonl FILE…`` reads Kubernetes API
server audit logs (``audit.k8s.io/v1`` events, JSON lines), AWS CloudTrail log files
(``{"Records": [...]}``, plain or gzip, one file or a bucket's directory tree) or
glasslog's own JSON lines, maps each record onto the event schema (docs/events.md) and
stores it through the same path as ``glasslog ingest``: locally through the ingest
pipeline, or to a server with ``--url``. Mappings, ids and exit codes: docs/import.md.

Modules: :mod:`~glasslog.importers.k8s` and :mod:`~glasslog.importers.cloudtrail` map
one record (pure functions); :mod:`~glasslog.importers.mapping` holds what they share
(ids derived from the source's own, so a re-import stores nothing twice);
:mod:`~glasslog.importers.inputs` reads files, directories and gzip within bounds;
:mod:`~glasslog.importers.run` turns the files into one stream of JSON lines and the
rejections back into files and lines.
"""

from glasslog.importers.run import FORMATS, Importer, Summary, import_local, import_remote

__all__ = ["FORMATS", "Importer", "Summary", "import_local", "import_remote"]
