// Package registry is the governed path for apps: the record of every app
// (an OAuth client plus what a platform team needs to govern it), its
// lifecycle, and the client store the authorization server reads.
//
// An app has RFC 7591 metadata, an owner and contacts, a category and risk
// tier, separate client ids and credentials for the sandbox and production,
// an approved scope set for production, a data-use agreement reference,
// reviews, recertification dates and a change history.
//
//	draft ──review──▶ sandbox_approved ──scopes+DUA──▶ production_approved
//	  │                     │   ▲                          │   ▲
//	  │                     ▼   │ reinstate                ▼   │ reinstate
//	  │                    suspended ◀─────────────────────┘   │
//	  └──────────────▶ retired ◀───────────────────────────────┘ (final)
//
// [Registry.Transition] checks the machine and each edge's preconditions;
// suspending or retiring revokes every grant of the app at each [Revoker]
// (the smart.Server of each environment) before it returns. A change to
// redirect URIs, keys, scopes or the launch URL of an approved app becomes a
// pending version that goes back to review while the approved version keeps
// working ([Registry.Update], [Registry.RecordReview]).
//
// [Registry.Clients] is the smart.ClientStore of one environment: only apps
// whose state permits it, under that environment's client id, limited in
// production to the approved scope set. A sandbox credential is unknown in
// production.
//
// NewApp.Sandbox creates an app already approved for the sandbox, in one
// write (open sandbox registration, bundled example apps).
//
// [Registration] serves RFC 7591/7592 dynamic registration; [Registry.Catalog]
// and [Registry.Similar] answer a marketplace.
package registry
