"""The testbed: ``wirelab up`` builds a topology with its routers, NAT, DNS servers and web
servers, and opens a prompt inside it to poke at and break (see console.py)."""
