"""GitLab (gitlab.com and self-managed, REST API v4) behind the forge loop's interface: its REST client
(:mod:`client`, built on :mod:`rest`, :mod:`inline`, :mod:`pipelines` and :mod:`text`), its merge
policy's reads and writes (:mod:`merge`) and its webhook deliveries' reader (:mod:`intake`).
"""
