"""ktstr: test harness for Linux process schedulers."""
