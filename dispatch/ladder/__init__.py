"""The ladder 楼栋 → 网格 → 社区 → 街道/区: `rules` (its arithmetic, pure), `step` (asking a
rung, going up, reminding, alerting the duty desk), `texts` (what its messages say)."""
