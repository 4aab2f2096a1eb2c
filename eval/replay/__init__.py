"""`tierwise replay`: real agent sessions re-run through the router and priced with Claude's
prompt-cache rules (docs/agent-routing.md#replay). Import the modules, not this package."""
