"""Decisions about a message: pure functions over what it says and what the desk knows.

Each rule module has one entry point and no I/O, so each is tested alone
(Mailman's rules and chains; Zammad's channel filters). The pipeline in
``ingest.pipeline`` gathers the facts, asks the rules, and stores.
"""
