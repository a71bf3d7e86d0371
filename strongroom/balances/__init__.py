"""Balance snapshots, their valuation and the figures derived from them."""
