"""Agent-aware routing: session and run state, budgets and tool-loop pinning around the core.

The stores are opened once, in the app's lifespan (router.http.app), and passed in; nothing here
opens a connection on its own. docs/agent-routing.md.
"""
