"""inventory-service: stock levels, answered only to the checkout workload."""
