"""The schema's SQL, installed as package ``pbx_sla.sql`` (see setup.py) and read by pbx_sla.store.migrate."""
