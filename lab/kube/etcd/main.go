// Command etcd is the etcd server of the lab cluster, built from the published server module
// (the repository's own main package lives in a module that is not meant to be required).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
