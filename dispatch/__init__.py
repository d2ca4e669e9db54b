"""Linli's domain: the community, its cases, and getting each case to a person who will go.

Modules: `models` (the data), `community` (places, people, duty rosters and their files),
`cases` (reports and the cases they open or join), `jobs` and `sweeper` (background work that
is never lost), `health`, `staff` (the console), `config` (settings from the environment),
`clock` (the one clock and local time), `security` (what every request goes through).
"""
