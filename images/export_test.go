package images

// Passwd and Group are the files the Dockerfile must write alike.
var Passwd, Group = passwd, group
