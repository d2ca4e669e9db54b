"""Cases: `report` (a resident's report, filed onto its case), `lifecycle` (the one state
machine: every status and milestone change), `timeline` (what happened, line by line)."""
