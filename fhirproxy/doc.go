// Package fhirproxy is the policy enforcement point in front of any FHIR R4
// server: a valid token is not permission to read everything. [Proxy]
// verifies the bearer token (smart.Verifier; from the Authorization header
// only: an access_token parameter is refused, never forwarded), parses
// each request once and
// strictly into an [Interaction], authorises it with the scopes engine
// (letters, v2 query constraints, contexts) and the patient compartment,
// forwards exactly what it authorised, re-serialised from the parsed form
// through httputil.ReverseProxy's Rewrite hook, and checks what comes back:
// resources outside the compartment or beyond the grant's consent clearance
// (security labels) are withheld, and a single one becomes the same 404 a
// missing resource gives (its audit event, not the answer, says it was
// withheld). Every request, allowed or refused, is audited, a malformed
// one too with the app, user and patient of its bearer token when the
// token is good; refusals are FHIR OperationOutcomes, and nothing refused
// reaches the upstream.
//
//	verifier, _ := authServer.Verifier("", "https://ehr.example.org/fhir")
//	proxy := &fhirproxy.Proxy{Upstream: fhirServerURL, Verifier: verifier, Audit: sink}
//	mux.Handle("/fhir/", http.StripPrefix("/fhir", proxy))
//
// # Policy decisions (SECURITY-BASELINE §13)
//
//   - D-1: a read outside the compartment or clearance answers 404, like a
//     missing resource; a read of another Patient is not even forwarded.
//   - D-2: a search that names another patient, in any form (repeated
//     parameters, OR lists, references, absolute URLs, modifiers), is
//     refused with 403 before anything is forwarded. Patient/p1 on another
//     server is another patient: an absolute reference names the context
//     patient only on the upstream's base, Proxy.Base or the token's
//     audience.
//   - D-6: Patient.link is not followed: a linked record is another
//     patient. A patient/ token may update its own Patient only keeping the
//     links as stored: adding, removing or retyping one is the EHR's
//     decision (a link moves the record into the other patient's
//     compartment, and merging servers act on it), and is refused with 403.
//     So is changing its identifiers: another patient's record number
//     added to it would make a search by that number find this patient.
//   - D-7: shared types (DefaultSharedTypes: Practitioner, Organization,
//     Location, Medication, …) may be read by patient/ tokens whose scopes
//     name them; writes to them are refused. They are in no patient's
//     compartment: a search of one in the patient's compartment
//     (Patient/{id}/Practitioner) is refused with 400 (search the type
//     itself), as the compartment holds none.
//   - D-9: resources above the clearance's confidentiality or with a
//     sensitivity tag it does not release are withheld; a Bundle that lost
//     entries for their labels is marked REDACTED (see Security labels).
//
// The compartment is the R4 Patient CompartmentDefinition's, for the types
// whose membership one reference to the patient settles (the element the
// type's patient search parameter reads): AdverseEvent, AllergyIntolerance,
// Appointment (a participant's actor), AppointmentResponse (its actor: the
// patient's answer to an appointment), BodyStructure, CarePlan, CareTeam,
// ChargeItem, Claim, ClaimResponse, ClinicalImpression, Communication,
// CommunicationRequest, Composition, Condition, Consent, Coverage (the
// beneficiary), CoverageEligibilityRequest and -Response, DetectedIssue,
// DeviceRequest, DeviceUseStatement, DiagnosticReport, DocumentManifest,
// DocumentReference, Encounter, EnrollmentRequest (the candidate),
// EpisodeOfCare, ExplanationOfBenefit, FamilyMemberHistory, Flag, Goal,
// ImagingStudy, Immunization, ImmunizationEvaluation,
// ImmunizationRecommendation, Invoice, List, MeasureReport, Media, the four
// Medication* request and event types, MolecularSequence, NutritionOrder,
// Observation, Procedure, QuestionnaireResponse, RelatedPerson,
// RequestGroup, ResearchSubject (the individual), RiskAssessment,
// ServiceRequest, Specimen, SupplyDelivery and VisionPrescription, and the
// patient's own Patient; and, though the definition leaves it out, Device
// (US Core's implantable devices, by Device.patient). A record of these
// types is the patient's when that element names the patient (its other
// references do not widen it). A Device that names no patient (a ward's
// monitor) is no patient's: a patient/ token reads it as a shared record,
// and its writes may name it but not change it; one answered in part
// (_elements, a summary) is that only where the proxy asked for its
// patient (a Device searched or read with _elements): an included one may
// have had its patient left out, and is withheld (so is a Binary answered
// in part without the securityContext the proxy did not ask for). The definition's others
// (Account, AuditEvent, Basic, Group, Person, Provenance, Schedule,
// SupplyRequest) are placed by lists of references, by nested elements or
// by two references, or are records a patient rarely writes, and are refused to
// patient/ tokens, as is every type outside the compartment that is not
// shared, but for Binary and Provenance (below).
//
// A patient/ token may read a Binary whose securityContext is in its
// compartment (never search Binary), and write one bound to one of its
// patient's records: a create, an update or a delete, whole (never a patch
// or a conditional write), where the securityContext names, by Type/id on
// this server, the patient or a record of the patient's the token may read
// (not a shared one), or, in a transaction, the fullUrl of a record of the
// compartment's types the transaction writes (a document filed with its
// content); the Binary replaced or removed must be bound so too. It may
// read a Provenance whose targets (at least one, at most eight) are all its
// patient's records that it may read (not shared ones): by id, each target
// then read from the FHIR server to judge it, or brought with a search's
// matches by _revinclude=Provenance:target (or Provenance:target:Type), as
// US Core has apps fetch them, each target then an entry the Bundle keeps
// before it (as servers write them). Another patient's Provenance, one
// about a withheld record, about nothing or about another server's records
// reads as missing; in a batch, a read of a Binary or a Provenance is
// judged as on its own, its records read. It may create a Provenance
// about its patient's records (each target read and judged so, or the
// fullUrl of a record of the compartment's types the same transaction
// writes: a reading filed with its provenance), never change or remove
// one; Provenance searches are refused. A chain of one link through a reference that is not to a
// patient (encounter.identifier=…, practitioner.name=…) is resolved by the
// proxy over the records the token may see, the patient's and shared
// ones (its own search of a compartment's type asks for the patient's
// records only). The proxy follows the pages of its own searches on the
// FHIR server's base and on its public base (Base), where a server told
// it lives there writes its links. For patient/ tokens, reverse chains (_has), longer chains, chains
// through a patient reference (subject:Patient.name; name the patient by
// id), any other _revinclude, iterating includes, _filter, _list,
// system-wide search and history, type history and a FHIRPath Patch are
// refused (fail closed); conditional writes are resolved by the proxy (see
// Conditional writes). A JSON Patch is applied by the proxy to the stored
// version it judged; the result is checked as an update's content and sent
// as the update, pinned to that version, so the server's reading of the
// patch never matters (a patch can move a record out of the compartment in
// ways no reading of the patch alone settles). One that cannot be applied
// is 422. Writes are checked on the new content (which must also be valid R4,
// checked with google/fhir/go) and on the stored version, and a PUT to an
// id that does not exist answers 404 as one to another patient's record
// does (no update-as-create with patient context). With patient context a
// written reference that may be to a patient carries no identifier (a
// logical reference could name another patient's record number), unless
// the stored version holds it as it is or it is the patient's own: an
// identifier (system and value) that the patient's record, read then,
// holds, beside Patient/<patient> or alone. Nor does it contain a Patient
// (another person's record filed in this patient's chart), but for one
// the stored version holds. A logical reference to a record of the
// compartment's types (an encounter by its visit number) must name by its
// identifier records of the patient's only, which the proxy searches for;
// one whose type nothing says, where such a type is admitted, is refused.
// Operations are denied
// unless listed (see Operations). A constrained read becomes a search by
// _id with the constraint, so the FHIR server proves the match; a
// constrained write is held to its constraint by the proxy (see
// Constrained writes). So is each entry of a constrained search's answer
// that the server does not mark as a match (one an _include brings); and
// where the proxy evaluates every scope's constraint (see Constrained
// writes for what it evaluates), the server's matches too, and the record
// a constrained read answers, so that a server that ignores the
// constraint's parameter (lenient, or not supporting it) cannot pass what
// the constraint excludes; a summary that leaves out what it reads
// (_summary=text; _summary=true where an element it reads is no R4
// summary element, as an Observation's or a Condition's category is not)
// is refused there. So is each version a constrained vread or instance
// history shows (the record as it is now must match too; a search finds
// current versions only). Batches are authorised entry by entry (see Writes in a batch or
// transaction), and in a batch response an entry the token may not see
// reads exactly like one the server did not find (a write entry keeps its
// status and location). Where answers are judged, a batched conditional
// read (ifNoneMatch, ifModifiedSince) is refused: the server's 304 would
// say the record exists. A batched search goes upstream as it would on its
// own, its entry written anew with what the proxy adds (the patient, a
// constraint, an _elements selection's additions, a _count lowered to the
// ceiling); a patient app's may be a search of a type. A read asked for
// in part goes written anew too, its _elements widened as on its own. Each is answered
// with a Bundle inspected as that search's own answer with the access it
// was authorised with (entries judged one by one, links moved, page links
// signed). An entry cannot carry Prefer: handling=strict, so every match of
// a batched constrained search is held to the constraint by the proxy, and
// one whose constraint it cannot evaluate is refused, as are a chain it
// resolves and a read under a constrained scope: send them on their own.
// An instance history with no visible version is a 404, and so are a vread
// and an instance history of a resource the token may not see as it is now
// (moved to another patient, or labelled, after the version was written):
// the current version is read first; one holding another record is the
// server's error (502), as that version's vread is. A write whose stored
// result the token may not read is answered like Prefer: return=minimal
// (status and Location, no body, whatever made it unreadable); under a constrained read it is read when the proxy sees it match
// the constraint (see Constrained writes). The client's own Prefer: return=
// goes to the server, and a write it answers without a body (return=minimal)
// is passed on as made. A create or an instance write takes no query parameters but
// _format, and a conditional write's are search criteria only: server
// instructions such as HAPI's _cascade=delete, which deletes beyond the
// token's scopes, are refused with 400. A read or vread takes _format,
// _pretty, _summary and _elements only (a constrained read's go with the
// search by _id it becomes), _type goes with a system-level search
// only, and an _include or _revinclude names * or Type:param[:Target] with
// R4's types (400 otherwise). A search may be POSTed to _search with a form body
// at each level R4 has it (Observation/_search,
// Patient/{id}/Observation/_search, _search): the form is read with the
// query's parser and checked as the GET's query is, and goes upstream
// re-encoded. An element selection always keeps what the proxy
// judges by (meta, the patient reference, a Binary's securityContext, a
// Provenance's target, the elements of a constraint it evaluates), and a
// summary that may leave such an element out is refused where it is
// judged (400, "use _elements"): _summary=text with patient context or
// under a constraint the proxy holds records to; _summary=true there
// where R4 does not mark the element a summary one (an Observation's
// category; an Appointment's participants, a Device's patient, which
// place them in the compartment: a Device summarised without its patient
// would read as a ward's monitor, which any patient app may read);
// _summary=true or text on a Binary. An underscored parameter FHIR does not define goes
// with a search or history (servers page with their own, such as HAPI's
// _getpages), and its answer is always read and judged, for any token. For
// every token, a search's criteria that other types' records meet need s
// on those types, outright (403 otherwise): a chain on the type it names,
// or on all types (*) when unnamed or longer; _has on each type it names;
// _list on List (but for a functional list such as $current-problems);
// _filter, _query and a sort by a chained key on all types.
// Conditional reads (If-None-Match,
// If-Modified-Since) of inspected answers are evaluated by the proxy once
// the resource is judged visible, never by a bodiless 304 from the
// upstream.
//
// # Security labels
//
// Labels are read under every name their code systems go by (the R4 URIs,
// the DSTU2 and STU3 URIs, the HL7 OIDs), and a resource's confidentiality
// is the highest it carries. A resource is judged with the labels of what
// it carries: its contained resources, and the resources in a Bundle held
// as a resource (a document). A Binary with a securityContext is judged by
// the resource it names, read from the FHIR server, and a Provenance by
// its targets (at least one, at most eight, each on this server): it
// tells of them (that they exist, who wrote them, when), so one about a
// withheld record is withheld with it, labelled or not, and one about a
// record the token may not read is not shown either. A read reads the
// targets; in a Bundle, a Provenance after the records it is about
// (_revinclude=Provenance:target, $everything) is judged by them as they
// went, and any other (a search of Provenance, a history, one that came
// first, a batched read; with patient context a batched read only) by
// reading its targets, as a Binary in a Bundle is by reading its
// securityContext (one withheld for a withheld record marks the Bundle
// REDACTED, as the record would), each record once a response and at most
// 50 of them (one about a record past those is left out, and the Bundle
// loses its total; a search of Provenance is sent with a _count of at most
// 50, so that a page of them rarely needs more). What a clearance
// withholds stays withheld: with a clearance short of every label, a search
// may not tell more of it than the REDACTED mark. Criteria that other
// resources meet (_has, _filter, _list, _query, longer chains) and
// _contained are refused (403). _summary=count, which the server would
// answer counting what is withheld, is answered by the proxy: it runs the
// search as authorised and counts the matches the access may see (at most
// 1000, across at most 10 pages; more is 403, narrow the search), a
// searchset Bundle with the total alone; so it does under a query
// constraint, whose matches it may hold itself. It counts a search of one
// type, or of a patient's compartment of one, on its own only: in a
// batch it is refused. A chain of one link to a
// named type (patient.identifier, subject:Patient.name) is resolved by the
// proxy over the records the access may see (following the target search's
// pages), at most Limits.MaxChains (4) of them a search, and forwarded as a
// search by their references; a total, and the
// Bundle's meta (where servers put the matches' labels), go out only when
// the page holds the whole result and nothing on it was withheld (a total
// also when only included entries were left out: it counts the matches,
// all there, and no more of them than the page sends); type and
// system history are refused. Nor may a write touch, or tell of, what is
// withheld: an update, patch or delete is checked against the stored
// version first, and one the clearance withholds answers 404, as a free id
// then does (no update-as-create); the write then goes upstream with
// If-Match on the version judged, so a record changed in between is the
// server's 412, not overwritten (batched, alike: see Writes in a batch
// or transaction); conditional writes are resolved by the proxy, batched
// too. Whatever the clearance, an update may raise a
// record's labels, never lower or remove them, and a patch of a labelled
// record must be a JSON Patch whose operations, read as the server reads
// them, leave its root, meta and contained alone (with patient context,
// where the proxy applies the patch, its result must keep the labels
// instead, as an update's content must). A patch is a JSON Patch
// or a FHIRPath Patch (in a batch: a Binary holding the one, a Parameters
// resource the other), read strictly; any other format is refused with 415.
// A body goes upstream labelled with the bare media type it was read as:
// a Content-Type parameter that would make the server read it otherwise
// (a charset other than UTF-8, a fhirVersion other than 4.0) is refused
// with 415, and a _format asking for anything but FHIR R4 JSON with 406.
// So is an Accept header that admits none of application/fhir+json,
// application/json (or the older application/json+fhir), read as RFC 9110
// reads it: the most specific media range decides, q=0 excludes, */* and
// application/* admit; _format overrides it, and a Binary read for its
// native content and an export file answer with types of their own.
// Of the Prefer header only the return preference goes upstream, rebuilt,
// so handling=lenient cannot ride along and loosen an injected constraint;
// and a search carrying a scope's constraint goes with handling=strict, so
// that a server lenient by default (HAPI is) refuses a constraint
// parameter it does not support rather than answering unconstrained.
// The audit event of a response lists the labels of what went out, never of
// what was withheld.
//
// # Constrained writes
//
// A write under a query-constrained scope (patient/Observation.cu?category=
// vital-signs) must stay within the constraint: a create's content must
// match it, an update's stored version and new content must both match, a
// patch's stored version and result must (the proxy applies a JSON Patch
// itself and sends the result as the update, pinned, as it does with
// patient context; a FHIRPath Patch is refused), and a delete's stored
// version must. The stored version is read even by a token that sees every
// record, and the write is pinned to it with If-Match. A stored record
// outside the constraint answers the 404 a constrained read of it gets,
// and so does a free id (no update-as-create under a constraint); content
// outside it is 403. What must match is not stored yet, so the FHIR server
// cannot prove it: the proxy evaluates the constraint itself, and only
// what it can evaluate exactly, token parameters whose R4 expression is
// one element path (category, code, status and the like for the common
// clinical types; _tag and _security for all), in the forms code,
// system|code, |code and system|, matched exactly. A scope whose
// constraint holds anything else (a modifier, a chain, another parameter)
// allows no write; when no scope allowing it can be evaluated the write is
// refused before anything is read. A delete is the exception: what it
// removes is stored, so where the proxy cannot evaluate every scope's
// constraint the FHIR server proves it, finding the record by _id with one
// scope's constraint, and the delete goes pinned to the version read
// before. Several constrained scopes OR, the pairs of one AND, as for a
// search. Batch entries are held alike; a
// conditional write is resolved on its own (see Conditional writes), and
// refused in a batch. The same evaluation shows
// a create's, update's or patch's answer (the record as stored) to a
// token whose read of the type is constrained, when it matches.
//
// # Operations
//
// An operation is invoked with GET or POST, and allowed only from the
// proxy's table (operations.go); any other is refused at every level:
//
//   - Patient/{id}/$everything. A token with read and search of every type asks
//     for everything; one with narrower scopes asks for the types it reads
//     and searches (as _type, which may repeat, one list going upstream;
//     a _type of its own must name only those),
//     with no constraint or under query constraints the proxy evaluates,
//     to which each entry of the type is then held (the server applies
//     none in $everything), and needs r on Patient without patient
//     context. The answer is judged entry by entry, so no entry of another
//     type goes whatever the server sends, and so is every later page,
//     whether a signed page link at the server's base or a next link
//     carrying the server's continuation (ct, _page_token, _page,
//     _offset);
//   - Observation/$lastn and US Core's DocumentReference/$docref, which
//     are searches: authorised, confined to the compartment, constrained
//     and judged exactly as their type's search is, except that $docref
//     takes no search parameters of DocumentReference's, so under a
//     query-constrained scope the constraint does not go with it and
//     every document answered is held to it by the proxy (a constraint
//     the proxy cannot evaluate refuses $docref); $lastn's matches are
//     held to a constraint the proxy evaluates as well, since servers
//     support few search parameters there. $docref's patient is the id
//     US Core defines it as, sent once (with patient context, the
//     context's);
//   - these three, the searches, may be POSTed with a Parameters body
//     too: its parameters (primitive values; $docref's type a Coding or
//     CodeableConcept, read as a token OR list) join the query's, are
//     parsed and authorised exactly as there, and the operation goes
//     upstream as the GET it then is, with no body;
//   - the terminology operations (ValueSet $expand and $validate-code,
//     CodeSystem $lookup, $validate-code and $subsumes, ConceptMap
//     $translate), each a read of the resource it runs on: r at instance
//     level, r and s at type level, where url (system for $lookup and
//     $subsumes) names it; outright scopes only; for a patient/ token, on
//     types in Proxy.SharedTypes. Their parameters go in the query or,
//     POSTed, in a Parameters body (Codings and CodeableConcepts too,
//     never a resource or a part), each checked against the operation's
//     list and read as a query's parameters are (no control character,
//     no name in another case). With a clearance short of every label the resource is judged
//     before the operation is sent, and the answer is judged always: of
//     the operation's type, no record inside, labels within the clearance.
//
// In a batch only $everything may be an entry. Bulk export ($export) is
// the one operation outside the table; see Bulk export.
//
// # Conditional writes
//
// A conditional update, patch or delete (PUT, PATCH or DELETE on
// Type?criteria) and a create with If-None-Exist are never sent on for the
// FHIR server to match: it would match records the token may not see
// (another patient's, a withheld one), write over them, and tell by its
// answer that they exist, and it would match again after the proxy
// judged. The proxy resolves them itself: it runs the criteria as the
// token's own search (compartment and constraints imposed, chains
// resolved, withheld records not counted) and sends the plain write the
// visible matches call for, which is authorised and checked as that write
// is on its own and pinned with If-Match to the version the criteria
// matched (a record changed since is refused with 412). For the
// token, what it may not see matches nothing:
//
//   - update: no match creates (POST; a body with an id creates at that
//     id if it is free and 409 if not, for an access that sees everything,
//     and is refused with 400 otherwise, there being no update-as-create
//     where answers are judged), one updates it (a body without an id gets
//     its id; another id is refused with 400);
//   - patch and delete: no match is the 404 of a missing record, one is
//     patched or deleted;
//   - create with If-None-Exist: no match creates, one is answered as a
//     read of it (200), nothing created;
//   - more than one match: 412 (multiple-matches), deletes included.
//
// A conditional write needs its write letter and s, and one that creates
// needs c. Under a query constraint the criteria are searched with it, the
// write is held to it (see Constrained writes), and a create that finds its
// record reads it by _id with the criteria and the constraint. The
// audit event names the record written. Inside a batch or transaction they
// are resolved the same way wherever answers are judged, each entry going
// upstream as the plain write (or, for a create that found its record, the
// read, answered as FHIR answers such a create: 200 with the record and its
// location) it resolved to; in a transaction, a reference to the fullUrl of a
// create that found its record is renamed to that record (and checked as
// any reference is). For an access that sees everything, batched
// conditional writes go upstream as they are (an update or a patch keeping
// the labels of whatever the criteria match).
//
// # References in writes
//
// With patient context a written record may name no other patient of this
// server, anywhere in it (a performer, a contained resource, an extension):
// the CompartmentDefinition would put it in that patient's compartment too.
// Wherever answers are judged (patient context, or a clearance short of
// every label), the records on this server a write refers to are read, at
// most 32, and must be ones the token may see (with patient context, a
// record of the compartment's types must be the patient's, of a type the
// token may read; a Binary must be one the token may read, judged by the
// record its securityContext names): a server that checks references
// would otherwise tell a withheld record, or another patient's, from a
// missing one. They are refused alike (403). An attachment's url (a
// DocumentReference's content) counts as a reference: a viewer would
// show the document it names as this record's. There a reference must also have a form the proxy
// reads (Type/id, versioned, absolute on this server, #contained, urn:uuid
// or urn:oid, another server's URL); an odd one ("Patient/2/", " Patient/2"),
// which a server could read past these checks, is refused with 400. What
// the stored version an update or patch replaces already refers to may be
// written again (an app sends back the record it read).
// A reference written as a search (Patient?identifier=…, in a resource,
// a contained one or a patch) is refused with 403 to an access that does
// not see everything: the FHIR server would resolve it over every record,
// link the write to one the access may not see, and tell by its answer
// whether one exists.
//
// # Writes in a batch or transaction
//
// Batches are authorised entry by entry, each as it is on its own, and one
// refused entry refuses the whole Bundle: nothing of it goes upstream. A
// patient app may create, update, patch and delete its patient's records
// in a batch or a transaction (a patch sent as the update it makes, as on
// its own), and a token with a clearance short of every label may update,
// patch and delete in one. Each write entry's content is checked, its stored version read and judged,
// and what it refers to read (see References in writes); its entry goes
// upstream with request.ifMatch on the version judged. A refused entry's
// answer is the Bundle's 403, the same for another patient's record, a
// withheld one and a free id. Where answers are judged, the Bundle's own
// names are held to what was judged, since a server puts the record an
// entry writes in place of every reference to its fullUrl:
//
//   - a fullUrl is a urn:uuid or urn:oid, unique in the Bundle, or the
//     URL on this server of the record its entry names; any other (one
//     that reads as Patient/p1 on a create, another server's URL, a
//     version) is refused with 400;
//   - a urn:uuid or urn:oid reference must be the fullUrl of a create or
//     update entry of the Bundle, which is itself judged (not of a read's
//     or a delete's, which a server might resolve to a record unjudged);
//   - a Bundle's checks read each record at most once, and at most 128
//     reads in all, each page of a conditional write's matches counting
//     as one (413 beyond).
//
// The audit events of a Bundle name what its entries name
// (audit.Event.Resources), a conditional entry as what it resolved to.
//
// # Reading responses
//
// A response is read only when the request cannot prove it: with no patient
// context, a clearance that allows every label and an answer that can hold
// only the authorised type, it passes as from a plain reverse proxy
// (unless Proxy.Transform is set: the host's redaction then sees every
// response that can carry resources, whatever the token, and each resource
// a bulk export file keeps, one line at a time; or
// Proxy.AuditEveryDisclosure, which has them read so that every audit
// event names the patients disclosed). Wherever an answer is read, an
// element selection (_elements) keeps meta and the references that name
// each record's patient; with AuditEveryDisclosure, a summary that leaves
// those out (_summary=text; _summary=true of an Appointment, a Device, …)
// is refused with 400 unless the token or the request names the patient,
// whom such a record is then taken to be. A Binary or a Provenance is
// named for the patients of the records it is bound to, which the proxy
// reads to judge it, or (for an access that sees everything) for the
// audit alone. A write's events name the
// patients whose records it changes: its new content's and the stored
// version's (read for a delete too with AuditEveryDisclosure).
// Otherwise responses are read strictly in one pass (member names matched
// exactly, as a FHIR client matches them; duplicates, invalid UTF-8 and
// anything ambiguous refused with 502) that also picks out the little the
// decision needs: type, id, patient references, security labels. A Bundle
// that must lose entries is rebuilt from the byte spans it keeps. A Bundle
// larger than Limits.StreamFrom (1 MiB) is filtered as it streams, about one
// entry held at a time (also when a search's Bundle is written with its
// entries before its resourceType, as servers that sort member names write
// it): its status goes out first, so one that turns invalid later is cut
// off rather than passed unchecked, and its total and meta follow its
// entries. An answer without the shape its interaction calls for (a read
// answered with a Bundle, a search with anything but a Bundle, entries
// outside a Bundle) is the proxy's 502. An error answer is passed only as an
// OperationOutcome (strict, within 64 KiB); any other body the server sends
// with an error becomes the proxy's own OperationOutcome, same status (a
// 404 or 410 is always the proxy's own). The server's words in an
// OperationOutcome (diagnostics, details, expressions) can name any record
// (HAPI refuses a delete naming a record that refers to the one deleted),
// so they reach only a token that may read every record of every type
// (no patient context, every label, an unconstrained read of *), and only
// where no Transform is set (free text escapes its reshaping); any other
// gets each issue's severity and code with the proxy's own words, in an
// error's answer (also one the request proves), a write's or a search's
// OperationOutcome, a batch entry's outcome and a bulk export's error
// file, and a delete's success without its body. The event of a refused
// request keeps the server's first sentence. Where a search's match has
// been removed, a record it includes (_include, _revinclude) goes only
// when an include of the search brings it from a record kept, by the link
// that include's parameter reads (an _include=Observation:encounter's, a
// kept match's encounter; a _revinclude's, its own reference to a kept
// match; with :iterate, from kept includes too): one brought by the withheld match
// would tell what that match refers to, and a link that is not there
// proves nothing (a match answered in part may lack it). With _elements,
// the proxy asks for the elements the includes follow; _include=* follows
// every reference, which no element list names, so it goes with _elements
// only for a token that sees every record (400 otherwise: ask for whole
// records, or name the includes). A summary leaves references out: with
// includes, _summary=text, and _summary=true with _include=* or with an
// include by an element R4 does not mark as a summary element
// (DiagnosticReport:result, Observation:device), are refused alike where a
// match may be removed. With Proxy.Base set, the paging
// links, fullUrls, entry locations and Location headers the upstream
// writes on its own base come back on the proxy's, so
// clients page through the proxy; page-token links at the base (HAPI's
// ?_getpages=…) come back signed for the client, grant, patient and type of
// their search. With the default Transport, an upstream that does not begin
// a response, or stalls in one, for longer than Proxy.Timeout is cut off
// (504 before the response starts).
//
// # A Binary's content as it is
//
// Apps show a document by reading its Binary in the content's own media
// type, and store one by sending the bytes with their Content-Type and the
// record they belong to in X-Security-Context (FHIR R4 http.html#binary).
// The proxy never relays what it cannot judge, so it converts at its edge:
// the upstream is always asked for, and sent, FHIR JSON. A read or vread of
// a Binary whose Accept header names only media ranges that are not FHIR
// formats (application/pdf, text/plain, */*; not application/fhir+json,
// application/json, XML) and that has no _format, _summary or _elements is
// judged as any read of it (labels, its securityContext, the compartment),
// and then answered with the resource's decoded data, its contentType
// (application/octet-stream if it has none that parses) and an
// X-Security-Context header; what the token may not see reads as a missing
// one does, as FHIR JSON. The content is served with a Content-Security-
// Policy that adds sandbox, so whatever it claims to be (text/html,
// image/svg+xml) runs nothing in a browser. A create or update of a Binary
// whose Content-Type is not JSON (nor a FHIR XML type, refused with 415 as
// before) becomes the FHIR JSON Binary it describes: the content base64,
// the media type with its parameters (a charset is the content's), the one
// X-Security-Context as its securityContext (given twice, or not one
// reference, it is 400), checked as a JSON write of it is (a patient app's
// must be bound to one of its patient's records). Without an Accept header,
// or with a FHIR one, a Binary reads as FHIR JSON, as any resource (a
// browser's own navigation names application/xml among its types, so it
// gets FHIR JSON: apps fetch with the content's type).
//
// # Bulk export
//
// A backend service exports through the proxy as from the server (FHIR
// Bulk Data Access), each step authorised and audited as any request:
//
//   - The kick-off (GET [base]/$export, [base]/Patient/$export or
//     [base]/Group/{id}/$export, with Prefer: respond-async) needs a
//     backend service's system/ token (a user/ one too where
//     Proxy.UserExports allows it; never one with patient context), r and
//     s on every type it names in _type,
//     and r on Group for a Group (which, for a clearance short of every
//     label, must be one it may see). Without _type the proxy names the
//     types the token may export, unless a wildcard scope allows every
//     type. A type allowed only by query-constrained scopes
//     (system/Observation.rs?category=laboratory) is exported when the
//     proxy evaluates their constraints (see Constrained writes): the
//     server is asked for the matches with a _typeFilter each
//     (Observation?category=laboratory), and every record of the type in
//     the files must match one, so a server that ignores _typeFilter sends
//     no more.
//   - The kick-off takes _outputFormat (NDJSON), _since, the client's own
//     _typeFilter queries, _elements, includeAssociatedData and, on
//     Patient or a Group, patient; any other parameter, or another value,
//     is refused. A POSTed kick-off's Parameters body is read strictly (a
//     name and a primitive value each; patient a Reference) and checked as
//     a query is. It goes upstream as that GET or, naming patients, as a
//     POST of a Parameters body rebuilt from what was checked. The server's
//     status URL comes back as a link of the proxy's:
//     [base]/$export-poll-status?_job=….
//   - A _typeFilter query (repeated, or several in one value separated by
//     commas, as Bulk Data 1 wrote them) must search a type the kick-off
//     exports, by criteria only (a result parameter such as _sort,
//     _include or _elements is 400) that the token could search by, as in
//     a search: for a clearance short of every label, none that searches
//     by other records (chains, _has, _list, _filter; 403). Each goes
//     upstream re-serialised; for a constrained type, once within each
//     scope's constraint (Observation?status=final&category=laboratory),
//     since the server ORs a type's queries; at most 32 in all.
//   - _elements must list root elements (element, or Type.element of a
//     type the kick-off exports). The proxy adds what it reads of a line
//     of each type the list selects from (meta, the references naming the
//     patient, a Provenance's target, a Binary's securityContext, what a
//     constraint reads), unqualified for unqualified elements and
//     Type.element for a type named, so a line keeps what it is judged and
//     audited by.
//   - patient, a Reference (Patient/id) in a POSTed body, up to 1000 of
//     them, needs a token that may read Patient (the server's answer to a
//     patient it does not hold would tell otherwise). For a clearance short
//     of every label, up to 200, each read first (a search by _id, 50 at a
//     time); a withheld one answers exactly as a missing one, with nothing
//     sent. The kick-off's audit event names the patients.
//   - includeAssociatedData takes LatestProvenanceResources and
//     RelevantProvenanceResources, for a token that may export Provenance:
//     their files are judged as any Provenance file, and an _elements list
//     selects from them too.
//   - The status is polled (GET) or the export cancelled (DELETE) there.
//     While it runs, the 202 and its X-Progress and Retry-After pass. The
//     finished manifest is rewritten: each file's url becomes a link of the
//     proxy's ([base]/$export-file?_file=…), its request is the client's
//     kick-off on the proxy's base (a GET's with its query; the server's
//     names what the proxy sent, with the types, filters and elements it
//     added),
//     requiresAccessToken is true,
//     files of types the token may not export are left out, and counts go
//     only to a token that sees every record, for types it exports with
//     no constraint (the others' files lose what they may not see, and a
//     count would tell how much). Files of deleted resources (with _since)
//     go only to a token that sees every record: a deleted record's labels
//     are gone with it, and a line names it by id. Each of their lines must
//     be a Bundle of DELETEs of types the token exports with no constraint.
//     Any other token's incremental export (with _since) lists among its
//     errors a file of the proxy's own, whether or not the server listed
//     deletions: an OperationOutcome (suppressed) saying that deletions
//     are not relayed, so a client keeping a copy knows to reconcile it.
//   - Each file is streamed from the server and judged line by line as it
//     passes, as a Bundle's entries are: a line of another type than the
//     file's, one the token may not see, or one its type's constraint does
//     not match, is left out; a line that is not one JSON resource cuts the
//     download (the client sees a failed transfer). The download's audit
//     event names the patients disclosed (the first thousand), and the
//     counts sent and left out.
//
// The links are sealed (AES-256-GCM, with a key derived from
// Proxy.PageKey): they carry the server's own URLs, the client and (by a
// hash, audit.Ref) the subject they were given to, and an expiry a day on,
// and show their holder none of it. A link is not a permission: following
// one needs a token of that client and subject, without patient context,
// whose scopes still allow the file's type. The server's status and file
// URLs must be on its base, or on the proxy's (as a server told the
// proxy's address for its own writes them). A server that writes its
// files to object storage (an Azure storage account, a bucket) is followed
// there only under the URL prefixes Proxy.ExportStorage names: the proxy
// reads each file with Proxy.StorageAuth's credential (never the FHIR
// server's) and judges it as any; the file's URL, which when pre-signed is
// a credential to the unjudged file, stays sealed in the link. Files
// anywhere else are refused with 502.
//
// # Browser apps (CORS)
//
// Set Proxy.AllowOrigin (usually [RegisteredOrigins]) so browser apps can
// call the API from their own origin: a response is readable cross-origin
// only by the origins of the token's client's registered redirect URIs,
// never with credentials; preflights are answered by the proxy, and the
// upstream's own CORS headers are dropped. Such an app may read Location,
// Content-Location, ETag, Last-Modified and X-Security-Context (a Binary's
// record, with its native content). The CapabilityStatement is readable
// from any origin.
package fhirproxy
