"""HTTP surfaces: each turns requests into service calls and results or errors into its wire shape."""
