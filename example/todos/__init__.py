"""The AuthZEN "Todo" interoperability scenario, answered by clearance's gates.

Users hold roles (groups) ``viewer``, ``editor``, ``admin`` and ``evil_genius``; they read
users and the shared todo list, and create, update and delete todos where ownership and roles
decide. The app also holds the documents and accounts of the specification's own examples.
"""
