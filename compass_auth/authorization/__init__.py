"""Authorization: the ``Authorizer`` decides a handler's RBAC checks with SubjectAccessReview."""
