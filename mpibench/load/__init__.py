"""mpibench load: JMeter-style load tests of one node's server configurations (see protocol.py's load messages)."""
