"""The StreamingService handlers, one module per area.

Each handler class takes the backends it needs and the service settings;
:class:`puregrpc_streaming.service.StreamingService` wires them to the
generated servicer; its interceptors add what every call gets (a call log,
a default deadline).
"""
