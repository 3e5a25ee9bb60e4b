import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Interventions on the selected node or on a supernode: ablate, scale (negative factors
// suppress), inject (set) a value or add one (steer), at the node's own position, at chosen
// positions or at every position (generated tokens too), in the constrained or the free regime
// (a neuron graph's edits run the real model on its own units, with no regime). The top tokens
// before and after and a short generation update live while a value slider moves. Two more
// pages check the graph against the model: Perturbation (one edit's effect on the nodes it
// reaches, predicted and actual) and Validation (the top nodes one at a time, a scatter and
// its correlation; the table of the target logits under the interventions).
Rectangle {
    id: panel

    required property ExplorerController explorer

    color: Theme.panel

    component Bar: Rectangle {
        property real share
        Layout.preferredWidth: 70
        Layout.preferredHeight: 14
        color: Theme.barTrack
        radius: 2
        Rectangle {
            width: parent.width * Math.max(0, Math.min(1, parent.share))
            height: parent.height
            radius: 2
            color: Theme.bar
        }
        Label {
            anchors.centerIn: parent
            text: (parent.share * 100).toFixed(1) + "%"
            font.pointSize: Theme.smallSize - 1
            color: Theme.text
        }
    }

    ColumnLayout {
        anchors.fill: parent
        spacing: 0

        TabBar {
            id: modes
            objectName: "interventionModes"
            Layout.fillWidth: true
            TabButton { text: "Edits" }
            TabButton { objectName: "perturbationTab"; text: "Perturbation" }
            TabButton { objectName: "validationTab"; text: "Validation" }
        }
        StackLayout {
            Layout.fillWidth: true
            Layout.fillHeight: true
            currentIndex: modes.currentIndex

            Item {
                ColumnLayout {
                    anchors.fill: parent
                    anchors.margins: Theme.padding
                    spacing: Theme.spacing

                    Label {
                        visible: !panel.explorer.interventionsAvailable
                        Layout.fillWidth: true
                        wrapMode: Text.Wrap
                        text: "Interventions need the traced prompt on the open model: trace a prompt, or open a graph of this model."
                        color: Theme.textMuted
                    }

                    GridLayout {
                        Layout.fillWidth: true
                        columns: 2
                        columnSpacing: Theme.spacing
                        rowSpacing: 4
                        enabled: panel.explorer.interventionsAvailable

                        Label {
                            text: "Target"
                            color: Theme.textMuted
                        }
                        ComboBox {
                            id: target
                            objectName: "interventionTarget"
                            Layout.fillWidth: true
                            model: {
                                const items = []
                                if (panel.explorer.selectedId !== "")
                                    items.push({ text: panel.explorer.selectedTitle, value: panel.explorer.selectedId })
                                for (const name of panel.explorer.supernodeNames)
                                    items.push({ text: "Supernode: " + name, value: "supernode:" + name })
                                return items
                            }
                            textRole: "text"
                            valueRole: "value"
                        }
                        Label {
                            text: "Positions"
                            color: Theme.textMuted
                        }
                        TextField {
                            id: positions
                            objectName: "interventionPositions"
                            Layout.fillWidth: true
                            placeholderText: "the node's own · * for every position · 3,5"
                            selectByMouse: true
                        }
                        Label {
                            text: "Value"
                            color: Theme.textMuted
                        }
                        RowLayout {
                            Layout.fillWidth: true
                            TextField {
                                id: value
                                objectName: "interventionValue"
                                Layout.preferredWidth: 80
                                text: "-2"
                                validator: DoubleValidator {}
                                selectByMouse: true
                            }
                            Switch {
                                id: free
                                // Unit graphs run the real model with nothing frozen: no regimes.
                                visible: !panel.explorer.neurons.graphInUnits
                                text: "Free regime"
                                checked: panel.explorer.interventions.freeRegime
                                onToggled: panel.explorer.interventions.freeRegime = checked
                                ToolTip.visible: hovered
                                ToolTip.text: "Constrained: attention and features frozen (direct effects).\nFree: attention and downstream features recomputed."
                            }
                        }
                    }
                    RowLayout {
                        enabled: panel.explorer.interventionsAvailable && target.currentIndex >= 0
                        Button {
                            objectName: "ablateButton"
                            text: "Ablate"
                            onClicked: panel.explorer.interventions.add(target.currentValue, "ablate", 0, positions.text)
                        }
                        Button {
                            objectName: "scaleButton"
                            text: "Scale ×" + value.text
                            onClicked: panel.explorer.interventions.add(target.currentValue, "scale", Number(value.text), positions.text)
                        }
                        Button {
                            objectName: "injectButton"
                            text: (panel.explorer.neurons.graphInUnits ? "Set =" : "Inject =") + value.text
                            onClicked: panel.explorer.interventions.add(target.currentValue, "inject", Number(value.text), positions.text)
                        }
                        Button {
                            objectName: "addButton"
                            text: "Add +" + value.text
                            onClicked: panel.explorer.interventions.add(target.currentValue, "add", Number(value.text), positions.text)
                            ToolTip.visible: hovered
                            ToolTip.text: "Steer: add the value to the unit or feature, whatever it was"
                        }
                        Item {
                            Layout.fillWidth: true
                        }
                        Button {
                            text: "Clear"
                            enabled: panel.explorer.interventions.list.count > 0
                            onClicked: panel.explorer.interventions.clear()
                        }
                    }

                    ListView {
                        id: active
                        objectName: "interventionList"
                        Layout.fillWidth: true
                        Layout.preferredHeight: Math.min(contentHeight, 150)
                        clip: true
                        model: panel.explorer.interventions.list
                        delegate: RowLayout {
                            id: row
                            required property int index
                            required property string targetLabel
                            required property string summary
                            required property string combined
                            required property string op
                            required property real value
                            required property bool enabled
                            width: ListView.view.width
                            CheckBox {
                                checked: row.enabled
                                onToggled: panel.explorer.interventions.setEnabled(row.index, checked)
                            }
                            Label {
                                Layout.fillWidth: true
                                objectName: "interventionSummary"
                                text: row.targetLabel + ": " + row.summary + (row.combined ? "\n" + row.combined : "")
                                elide: Text.ElideRight
                                color: Theme.text
                                font.pointSize: Theme.smallSize
                            }
                            Slider {
                                visible: row.op !== "ablate"
                                Layout.preferredWidth: 110
                                from: row.op === "scale" ? -5 : 0
                                to: row.op === "scale" ? 5 : Math.max(10, row.value * 2)
                                value: row.value
                                live: true
                                objectName: "interventionValueSlider"
                                onMoved: panel.explorer.interventions.setValue(row.index, value)
                                onPressedChanged: if (!pressed) panel.explorer.endGesture()
                            }
                            ToolButton {
                                text: "✕"
                                onClicked: panel.explorer.interventions.remove(row.index)
                            }
                        }
                    }

                    Rectangle {
                        Layout.fillWidth: true
                        Layout.preferredHeight: 1
                        color: Theme.divider
                    }

                    RowLayout {
                        Layout.fillWidth: true
                        Label {
                            text: "Top token"
                            color: Theme.textMuted
                        }
                        Label {
                            objectName: "topBefore"
                            text: "“" + panel.explorer.interventions.topBefore + "”"
                            font.family: Theme.monoFamily
                            font.pointSize: Theme.titleSize
                            color: Theme.text
                        }
                        Label {
                            text: "→"
                            color: Theme.textMuted
                        }
                        Label {
                            objectName: "topAfter"
                            text: "“" + panel.explorer.interventions.topAfter + "”"
                            font.family: Theme.monoFamily
                            font.pointSize: Theme.titleSize
                            font.bold: panel.explorer.interventions.topAfter !== panel.explorer.interventions.topBefore
                            color: panel.explorer.interventions.topAfter !== panel.explorer.interventions.topBefore ? Theme.error : Theme.text
                        }
                        BusyIndicator {
                            running: panel.explorer.interventions.intervening
                            Layout.preferredHeight: 22
                            Layout.preferredWidth: 22
                        }
                    }
                    Label {
                        visible: text !== ""
                        Layout.fillWidth: true
                        text: panel.explorer.interventions.interventionNote
                        wrapMode: Text.Wrap
                        color: Theme.textMuted
                        font.pointSize: Theme.smallSize
                    }

                    ListView {
                        objectName: "outcomeList"
                        Layout.fillWidth: true
                        Layout.fillHeight: true
                        Layout.minimumHeight: 80
                        clip: true
                        model: panel.explorer.interventions.outcome
                        header: RowLayout {
                            width: ListView.view.width
                            Label { Layout.fillWidth: true; text: "token"; color: Theme.textFaint; font.pointSize: Theme.smallSize }
                            Label { Layout.preferredWidth: 70; text: "before"; color: Theme.textFaint; font.pointSize: Theme.smallSize }
                            Label { Layout.preferredWidth: 70; text: "after"; color: Theme.textFaint; font.pointSize: Theme.smallSize }
                            Label { Layout.preferredWidth: 56; text: "Δ logit"; color: Theme.textFaint; font.pointSize: Theme.smallSize }
                        }
                        delegate: RowLayout {
                            id: outcomeRow
                            required property string token
                            required property real probBefore
                            required property real probAfter
                            required property real logitDelta
                            width: ListView.view.width
                            height: 22
                            Label {
                                Layout.fillWidth: true
                                text: "“" + outcomeRow.token + "”"
                                font.family: Theme.monoFamily
                                elide: Text.ElideRight
                                color: Theme.text
                            }
                            Bar {
                                share: outcomeRow.probBefore
                            }
                            Bar {
                                share: outcomeRow.probAfter
                            }
                            Label {
                                Layout.preferredWidth: 56
                                text: (outcomeRow.logitDelta >= 0 ? "+" : "") + outcomeRow.logitDelta.toFixed(2)
                                font.family: Theme.monoFamily
                                color: outcomeRow.logitDelta >= 0 ? Theme.positive : Theme.negative
                            }
                        }
                    }

                    GridLayout {
                        Layout.fillWidth: true
                        columns: 2
                        visible: panel.explorer.interventions.generationBefore !== "" || panel.explorer.interventions.generationAfter !== ""
                        Label { text: "Generated"; color: Theme.textMuted }
                        Label {
                            Layout.fillWidth: true
                            text: panel.explorer.interventions.generationBefore
                            font.family: Theme.monoFamily
                            elide: Text.ElideRight
                            color: Theme.text
                        }
                        Label { text: "With edits"; color: Theme.textMuted }
                        Label {
                            objectName: "generationAfter"
                            Layout.fillWidth: true
                            text: panel.explorer.interventions.generationAfter
                            font.family: Theme.monoFamily
                            elide: Text.ElideRight
                            color: panel.explorer.interventions.generationAfter !== panel.explorer.interventions.generationBefore ? Theme.error : Theme.text
                        }
                    }
                }
            }
            PerturbationView {
                explorer: panel.explorer
            }
            ValidationView {
                explorer: panel.explorer
            }
        }
    }
}
