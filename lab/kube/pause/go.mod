// The sandbox container of the lab cluster (kmcast lab up --kubernetes).
module kmcast.lab/kube/pause

go 1.24.0
