// Package testutil holds what the tests of several packages share: waiting for a condition (Poll,
// Eventually), finding the third-party tools and Docker images a test needs or skipping it loudly
// (failing it under CI=true: RequireTool, RequireDocker, Unavailable), and loopback addresses that no
// other test — in this process or another — is handed while this one runs (LoopbackAddrs), and small
// volumes to fill (MountTmpfs, FillVolume), and certificate authorities and certificates made on the fly
// (NewCA, CA.Issue).
//
// It is imported by tests only and depends on nothing of Weir.
package testutil
