"""Linli's service: the engine that gets a resident's report to a person who will go, and the
faces through which people use it. One line per package and module, kept true by a test
(`tests/test_app.py`).

The engine, from the bottom up:
- `config`: settings from the environment, with every default
- `db`: the SQLAlchemy handle and the UTC column type
- `clock`: the one clock and local time
- `models`: the schema (typed)
- `changes`: what a commit changed, told to whoever keeps copies (the kept sticker pages)
- `words`: zh/en names of rungs, statuses, roles, channels, weekdays
- `links`: signed member links
- `phones`: phone numbers read one way (E.164)
- `security`: what every request goes through (limits, cleaning, headers)
- `exports`: spreadsheet cells written inert
- `community`: a community's places, people and rosters, from and to its file; the demo
- `roster`: who answers for a place (`routing`) and who is on duty now (`duty`)
- `case`: reports (`report`), the one state machine (`lifecycle`), the timeline (`timeline`),
  what a resolution left (`result`)
- `ladder`: 楼栋 → 网格 → 社区 → 街道/区: its rules, its steps, its messages
- `outbox`: messages written with their decision, then sent, paced, retried, receipted
- `channels`: provider clients, leaves that know nothing of the domain
- `jobs`: the runner (RQ or in-process), the job table, the sweeper, the reconciliation
- `metrics`: response figures, in Python and in SQL, and /metrics

The faces (templates/ has one folder for each of the first three):
- `resident`: the sticker pages, no app and no login (/s, /c)
- `member`: party members' and volunteers' pages and Web Push (/m)
- `staff`: the console (/staff)
- `hooks`: provider webhooks (/webhooks)
- `health`: /healthz
- `errors`: the 503 page when the database is away
- `sessions`: the signed cookie sessions
- `cli`: import, export, demo, worker, sweeper
"""
