"""The boundary to the machine: udev hotplug, the hidraw transport, hub port power."""
