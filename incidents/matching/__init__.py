"""Matching: propose the optimal assignment of experts to every open slot of an incident.

`core` is pure (numpy + OR-Tools, no Django); `loader` reads the database into a `core.Problem`
and writes the proposals back; the `match` command and the API are doors onto `loader.run`.
"""
