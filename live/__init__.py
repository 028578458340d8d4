"""Live delivery: telling subscribers, on any instance, that a conversation changed."""
