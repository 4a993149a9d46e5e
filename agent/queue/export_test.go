package queue

// RecordKey is the Badger key of the record at k, for tests that damage the store.
func RecordKey(k Key) []byte { return k.bytes(recordPrefix) }
