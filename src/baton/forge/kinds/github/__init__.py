"""GitHub (github.com and GitHub Enterprise Server) behind the forge loop's interface: its REST client
(:mod:`client`), its merge policy's reads and writes (:mod:`merge`), and a GitHub App (:mod:`app`: JWTs
and installation tokens, :mod:`tokens`; :mod:`app_events`: installation deliveries; :mod:`app_check`:
``baton forge test``'s checks of an App).
"""
