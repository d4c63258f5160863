"""CloudCore: CloudHub, EdgeController, DeviceController, SyncController, wired in ``app``."""
