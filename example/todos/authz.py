"""Who may do what in the Todo scenario, and how the AuthZEN endpoint names it.

Roles are groups (see ``roles.py``): a ``viewer`` reads users and todos; an ``editor`` also
creates todos and updates and deletes their own; an ``admin`` deletes anyone's, an
``evil_genius`` updates anyone's.
"""

from django.contrib.auth import get_user_model

from clearance import ACTOR, Action, predicate, where
from clearance.contrib import authzen

from .models import Account, Document, Todo

User = get_user_model()

# -- users -------------------------------------------------------------------------------------

read_user = Action(
    "todos.read_user", model=User, permission="auth.view_user", label="See a user's picture"
)
read_user.policy("active", where(is_active=True), reason="Only active users are shown.")

# -- todos -------------------------------------------------------------------------------------

owner_active = where(owner__isnull=True) | where(owner__is_active=True)


@predicate(uses_object=False)
def updates_any(ctx):
    """Holds the role that updates anyone's todos (evil genius)."""
    return ctx.actor.has_perm("todos.update_any_todo")


@predicate(uses_object=False)
def deletes_any(ctx):
    """Holds the role that deletes anyone's todos (admin)."""
    return ctx.actor.has_perm("todos.delete_any_todo")


view = Action("todos.view", model=Todo, permission="todos.view_todo", label="See the todo list")
view.policy("owner_active", owner_active, reason="Todos of a deactivated user are hidden.")

create = Action("todos.create", model=Todo, permission="todos.add_todo", label="Create a todo")
create.policy(
    "own_todo",
    where(owner=ACTOR) | where(owner__isnull=True),
    reason="You can only create todos of your own.",
)

update = Action(
    "todos.update", model=Todo, permission="todos.change_todo", label="(Un)complete a todo"
)
update.policy(
    "owner_or_evil_genius",
    where(owner=ACTOR) | updates_any,
    reason="Only the todo's owner may update it.",
)

delete = Action("todos.delete", model=Todo, permission="todos.delete_todo", label="Delete a todo")
delete.policy(
    "owner_or_admin",
    where(owner=ACTOR) | deletes_any,
    reason="Only the todo's owner may delete it.",
)

# -- the specification's examples: documents and accounts ---------------------------------------

read_document = Action(
    "todos.read_document", model=Document, permission="todos.view_document", label="Read a document"
)
read_document.policy(
    "reader", where(owner=ACTOR) | where(readers=ACTOR), reason="Only its readers may read it."
)
edit_document = Action(
    "todos.edit_document", model=Document, permission="todos.change_document", label="Edit"
)
edit_document.policy("owner", where(owner=ACTOR), reason="Only its owner may edit a document.")

read_account = Action(
    "todos.read_account", model=Account, permission="todos.view_account", label="Read an account"
)
read_account.policy("holder", where(holders=ACTOR), reason="Only its holders may read it.")
write_account = Action(
    "todos.write_account", model=Account, permission="todos.change_account", label="Write"
)
write_account.policy("holder", where(holders=ACTOR), reason="Only its holders may write it.")

# -- the AuthZEN mapping -----------------------------------------------------------------------

# A user is named by email or by the identity the front end knows (the interop's PID).
authzen.subject("user", User, lookup=("email", "todo_profile__pid"))

authzen.resource(
    "user",
    User,
    lookup=("email", "todo_profile__pid"),
    actions={"can_read_user": "todos.read_user"},
)

# The interop's PDP is stateless about todos: the caller describes the todo (its owner), as the
# scenario's backend does, and the gates decide on that description.
authzen.resource(
    "todo",
    Todo,
    lookup="uuid",
    stored=False,
    properties={"ownerID": "owner__email"},
    actions={
        "can_read_todos": "todos.view",
        "can_create_todo": authzen.creation("todos.create"),
        "can_update_todo": "todos.update",
        "can_delete_todo": "todos.delete",
    },
)

authzen.resource(
    "document",
    Document,
    lookup="name",
    properties={"owner": "owner__email"},
    actions={
        "can_read": "todos.read_document",
        "read": "todos.read_document",
        "can_edit": "todos.edit_document",
    },
)

authzen.resource(
    "account",
    Account,
    lookup="number",
    actions={"can_read": "todos.read_account", "can_write": "todos.write_account"},
)
