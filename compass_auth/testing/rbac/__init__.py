"""RBAC as kube-apiserver evaluates it: objects, their validation and store, the built-in roles,
the decision, SubjectAccessReview's wire shapes, and ``DevCluster``'s RBAC methods."""
