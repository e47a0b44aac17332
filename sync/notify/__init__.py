"""Tell the owner where they already look: one GitHub issue per problem that needs them."""
