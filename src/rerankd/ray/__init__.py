"""rerankd on Ray Serve: engine replicas behind one gateway that speaks rerankd's HTTP API.

`serve run rerankd.ray:app` (or a Serve config file naming it) deploys it; `rerankd serve --ray`
starts or joins a cluster and does the same. The only package that imports `ray`
(an import-linter contract keeps it out of every other).
"""

from rerankd.ray.application import app, build

__all__ = ["app", "build"]
