// Command coredns: CoreDNS v1.12.0 with only the plugins a kind cluster's Corefile uses (plus a
// few small, common ones), built as CoreDNS documents for an external main. The stock binary
// links every plugin, with the AWS, Azure, Google Cloud, etcd and Datadog SDKs behind them:
// a cold build of it was the slowest step of the e2e node image (607 s on two cores).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// directives is CoreDNS's plugin.cfg order (which decides the order a query meets plugins),
// restricted to the plugins imported above.
var directives = []string{
	"metadata", "cancel", "reload", "bind", "debug", "ready", "health", "prometheus", "errors",
	"log", "loadbalance", "cache", "rewrite", "template", "hosts", "kubernetes", "loop",
	"forward", "whoami",
}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
