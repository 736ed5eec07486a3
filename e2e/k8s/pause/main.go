// Command pause is the sandbox ("pause") image of the e2e-k8s cluster: it holds a pod's namespaces and
// waits for SIGINT or SIGTERM. Built static and packed FROM scratch, since no registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
