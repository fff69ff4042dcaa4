"""The StreamingService handlers, one module per area.

Each handler class takes the backends it needs and the service settings;
:class:`puregrpc_streaming.service.StreamingService` wires them to the
generated servicer and adds what every call gets (a default deadline and a
call log).
"""
