"""What goes over the wire: the API server's JSON documents and Kubernetes' protobuf encoding."""
