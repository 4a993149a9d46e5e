package queue

// RecordKey is the Badger key of the record at k, for tests that damage the store.
func RecordKey(k Key) []byte { return k.bytes(recordPrefix) }

// DeadKey is the Badger key of the dead letter at k, for tests that write old formats.
func DeadKey(k Key) []byte { return k.bytes(deadPrefix) }
