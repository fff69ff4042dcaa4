"""streaming.v1.StreamingService on puregrpc: the project's main job."""
