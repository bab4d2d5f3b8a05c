package controller

// ExpireEventsBefore lets the external tests, which need the in-memory store of
// controllertest (a package that imports this one), run one expiry pass.
var ExpireEventsBefore = expireEvents
